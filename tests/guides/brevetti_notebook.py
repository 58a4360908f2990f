# The platform job notebook's cells (brevetti-platform-job-notebook.md), in order, as their
# code reads: only the import lines are changed (`vue_schema_utils` has no counterpart and
# is not used), and the notebook's undefined `SerializeableObject` is defined first: a
# settings class with a nested `custom` object.
from dataclasses import dataclass

from runner.attach import JobSettings


@dataclass
class MyCustomObject:
    custom_param: int = 0


class SerializeableObject(JobSettings):
    param_1: float = -1.0
    param_2: str = "Param2 not provided"
    param_3: dict = {}
    custom: MyCustomObject = MyCustomObject()


# Job info: NB: replace with ID and api key from your job
import os
import getpass

model_id = os.getenv("job_id") or input("Training job model id (can be read from url https://platform.brevetti.ai/models/{model_id})")
api_key = os.getenv("api_key") or getpass.getpass("Training job Api Key:")

from runner.attach import Job

job = Job.init(job_id=model_id, api_key=api_key)

from runner.attach import Job
import sys

# Parsing parameters using command line args will set the settings in the nested object
# job.settings

# For classes hinted to be an object type as 'dict', 'list' etc the parameter text will be json parsed

sys.argv += ["--param_3", '{"test_dict_serialization": "nested2"}',
             "--custom.custom_param", "5"]

class MiniJobWithCustomSettings(Job):
    Settings = SerializeableObject
    settings: Settings

job = MiniJobWithCustomSettings.init(job_id=model_id, api_key=api_key)

print(job.settings.get_config()) # NB: param_3 and custom has been initialized by the command line parameters assigned above
print(job.settings.custom, job.settings.custom.__dict__)

print(job.upload_job_output())  # the notebook cell's value, printed

temp_path = job.temp_path("something_i_want_to_save_temporarily.txt")
print(temp_path)

job.io.write_file(temp_path, "Valuable information")
print(str(job.io.read_file(temp_path), "utf-8"))

artifact_path = job.artifact_path("something_i_want_to_save.txt")
print(f"Available at on the website: {job.host_name}/models/{job.id}/artifacts")

# And in from the job
job.io.write_file(artifact_path, "Valuable information")
print(str(job.io.read_file(artifact_path), "utf-8"))
