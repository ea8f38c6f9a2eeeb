"""The course report hub: the aiohttp server and the core its workers share."""
