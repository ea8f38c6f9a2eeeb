"""The dashboard page (static files, no build step), installed as the package `hub.web` so that any
install of the hub, a wheel included, serves it."""
