"""The applications: the batch command and its jobs, Ray scale-out, the papers' evaluation, before/after
comparison, weight conversion. Built on every layer below."""
