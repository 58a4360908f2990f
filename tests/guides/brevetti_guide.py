# The Job API guide's example (brevetti-job-api-guide.md), as its code reads: only the
# import line is changed (and the guide's typos mended: `def run(self)`, the f-string's
# closing quote). The test puts the job's id and key where the guide says 'UUID' and 'key'.
from runner.attach import Job, JobSettings

class MyJobSettings(JobSettings):
    my_custom_int_setting: int
    
class MyJob(Job):
    settings: MyJobSettings
    
    def run(self):
        print(f"My setting is {self.my_custom_setting}")
        return None

job = MyJob.init(job_id='UUID', api_key='key')
job.start()
