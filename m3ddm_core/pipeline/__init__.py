"""The pipeline layer, in the order the data flows: canvas -> encode -> plan -> executors (passes, guidance,
sampler, schedulers) -> composite; with resume, memory tracing and shots. Built on the model layer only."""
