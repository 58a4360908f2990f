"""Single-task jobs: work that needs no partitioning, with the same context, status,
timeouts and artifacts as any job.

::

    class Train(SimpleJob):
        settings: TrainSettings          # a pydantic model
        def run(self):
            self.ctx.add_metric("loss", 0.1)
            return {"accuracy": 0.93}

    Train.submit(client, settings=TrainSettings(lr=0.1)).wait()
    # or from a shell:  python train.py --lr 0.1 --optimizer.name adam

A subclass registers the template ``name@version`` (partitioner ``single``, assembler
``single``, and an app that runs it) when its class is defined, so workers that import
the module run it like any other template.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import Any, ClassVar, get_type_hints

from pydantic import BaseModel, ValidationError
from pydantic_settings import CliApp

from runner.exits import exit_on_error
from runner.client import Client, Job
from runner.errors import InvalidParams, JobFailed, TemplateError
from runner.registry import Template, app, template

__all__ = ["SimpleJob"]


def kebab_options(argv: list[str]) -> list[str]:
    """``argv`` with option names in the dashed spelling the settings parser reads, so
    ``--custom.custom_param 5`` works as well as ``--custom.custom-param 5``."""
    out = []
    for token in argv:
        if token.startswith("--") and len(token) > 2:
            name, eq, value = token.partition("=")
            token = name.replace("_", "-") + eq + value
        out.append(token)
    return out


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


class SimpleJob:
    """Subclass, annotate ``settings: YourModel``, implement :meth:`run`.

    Class attributes: ``name`` (default: the class name in kebab-case), ``version``
    (default ``1.0.0``), and optional ``task_timeout``, ``job_timeout``, ``max_retries``,
    ``queue``, ``inputs`` — the template's defaults.
    """

    name: ClassVar[str | None] = None
    version: ClassVar[str] = "1.0.0"
    task_timeout: ClassVar[float | None] = None
    job_timeout: ClassVar[float | None] = None
    max_retries: ClassVar[int | None] = None
    queue: ClassVar[str | None] = None
    inputs: ClassVar[tuple[str, ...]] = ()
    settings_model: ClassVar[type[BaseModel]]
    template: ClassVar[Template]

    def __init__(self, settings: BaseModel, ctx: Any) -> None:
        self.settings = settings
        self.ctx = ctx

    def run(self) -> Any:
        """Do the work; the return value (JSON) is the job's result."""
        raise NotImplementedError(f"{type(self).__name__}.run")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        model = get_type_hints(cls).get("settings")
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TemplateError(f"{cls.__name__} must declare `settings: SomeModel` (a pydantic BaseModel)")
        cls.settings_model = model
        name = cls.name or _snake(cls.__name__)
        fn_name = f"simple.{name}"

        def run_job(piece: int, ctx: Any) -> Any:
            return cls(ctx.params, ctx).run()

        run_job.__qualname__ = f"{cls.__qualname__}.run_job"
        run_job.__module__ = cls.__module__
        app(fn_name, params=model)(run_job)
        cls.template = template(
            name, cls.version, partitioner="single", app=fn_name, assembler="single",
            task_timeout=cls.task_timeout, job_timeout=cls.job_timeout, max_retries=cls.max_retries,
            queue=cls.queue, inputs=cls.inputs, description=(cls.__doc__ or "").strip().split("\n")[0],
        )

    @classmethod
    def submit(cls, client: Client, settings: BaseModel | dict[str, Any] | None = None, **options: Any) -> Job:
        """Queue one run with ``settings`` (a model instance or a dict; validated).

        ``options`` are :meth:`Client.submit`'s: ``task_timeout``, ``job_timeout``,
        ``inputs``, ``name`` …
        """
        if isinstance(settings, BaseModel):
            settings = settings.model_dump(mode="json")
        return client.submit(cls.template.ref, params={"app": settings or {}}, **options)

    @classmethod
    def parse_args(cls, argv: list[str] | None = None) -> BaseModel:
        """Settings from command-line arguments in dot notation (``--optimizer.name adam``;
        ``--batch_size`` or ``--batch-size``; dict and list fields take JSON). ``--help`` lists them. Raises InvalidParams
        naming every bad option (``--lr: Input should be a valid number … got 'fast'``)."""
        try:
            return CliApp.run(cls.settings_model, cli_args=kebab_options(sys.argv[1:] if argv is None else argv))
        except ValidationError as exc:
            raise InvalidParams([(f"--{'.'.join(map(str, e['loc']))}", f"{e['msg']}, got {e.get('input')!r}")
                                 for e in exc.errors()]) from None

    @classmethod
    def main(cls, argv: list[str] | None = None, client: Client | None = None) -> Any:
        """``python my_job.py --lr 0.1``: parse settings, submit to the configured fleet
        (``RUNNER_*``), wait, print the result as JSON and return it.

        Errors are one line on stderr and an exit status, as on ``runner``'s command line
        (2: a bad option; 1: the job failed — naming the module to ``--include`` when no
        worker knows the template)."""
        with exit_on_error(argv):
            settings = cls.parse_args(argv)
            job = cls.submit(client or Client(), settings)
            print(f"submitted job {job.id} ({cls.template.ref})", file=sys.stderr)
            try:
                result = job.wait()
            except JobFailed as exc:
                if (exc.error or {}).get("type") == "TemplateNotFound":
                    raise JobFailed(f"{exc}; no worker imports module {cls._module_name()!r}: start one with "
                                    f"runner worker --include {cls._module_name()}", exc.status) from None
                raise
            print(json.dumps(result, indent=2))
            return result

    @classmethod
    def _module_name(cls) -> str:
        """The module workers must import for this job: the script's file name when it runs
        as ``__main__``."""
        if cls.__module__ != "__main__":
            return cls.__module__
        path = getattr(sys.modules["__main__"], "__file__", None) or "your_module.py"
        return os.path.splitext(os.path.basename(path))[0]
