"""``python -m actnet`` runs the command-line interface."""

from actnet.cli import main

if __name__ == "__main__":
    main()
