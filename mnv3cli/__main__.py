"""``python -m mnv3cli`` runs the ``mnv3`` command."""

from .cli.app import main

if __name__ == "__main__":
    main()
