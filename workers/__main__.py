"""``python -m workers [celery worker options]``: the same as ``runner worker``."""

from runner.cli import main

if __name__ == "__main__":
    main(["worker", *__import__("sys").argv[1:]])
