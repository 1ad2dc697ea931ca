"""``python -m cunicorn`` runs the same command as ``cunicorn``."""

from cunicorn.cli import main

if __name__ == "__main__":
    # argv[0] is __main__.py here; name the program the way the user knows it
    main(prog="cunicorn")
