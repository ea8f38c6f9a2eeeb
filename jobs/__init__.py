"""Background report jobs, run by arq workers; depends on `hub`, never the reverse."""
