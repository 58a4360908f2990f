# The Job API introduction's snippets (brevetti-job-api-intro.md), in order, as their code
# reads: only the import line is changed. The job's id and key come from argv
# (--job_id … --api_key …), as the introduction says; the test names the model archive.
import os
path_to_artifact_with_model_archive = os.environ["MODEL_ARCHIVE"]

from runner.attach import Job
job = Job.init()

print(f"Uploading metrics and outputs to {job.host_name}")
job.add_output_metric("My custom metric", 277)
job.upload_job_output()

job.complete_job(path_to_artifact_with_model_archive)
