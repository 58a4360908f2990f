"""A single-task job, imported by the test workers and run as a script by a test:
``python tests/simple_jobs.py --lr 0.1 --optimizer.name adam``."""

from __future__ import annotations

from pydantic import BaseModel

from runner import SimpleJob


class Optimizer(BaseModel):
    name: str = "sgd"
    betas: list[float] = [0.9, 0.999]


class TrainSettings(BaseModel):
    lr: float = 0.01
    epochs: int = 2
    optimizer: Optimizer = Optimizer()
    tags: dict[str, str] = {}


class Train(SimpleJob):
    """Pretends to train: reports what it was given."""

    settings: TrainSettings
    job_timeout = 120

    def run(self) -> dict:
        for epoch in range(self.settings.epochs):
            self.ctx.add_metric("loss", 1.0 / (epoch + 1))
        self.ctx.io.write_file("model.txt", f"{self.settings.optimizer.name}:{self.settings.lr}")
        return {"lr": self.settings.lr, "optimizer": self.settings.optimizer.model_dump(), "tags": self.settings.tags,
                "job": self.ctx.job_id}


if __name__ == "__main__":
    Train.main()
