"""`python -m hub` and the `hub` command (`run`).

Nothing is imported until `run()`: the worker's part writers are started with `spawn`, which imports
the parent's main script in each of them, and the `hub` command's script imports this module. When it
imported the whole command (aiohttp, arq, obstore, JWT...), every part writer carried that weight for
nothing: about 30 MB each, four processes a worker.
"""


def run() -> None:
    from hub.cli import main

    main()


if __name__ == "__main__":
    run()
