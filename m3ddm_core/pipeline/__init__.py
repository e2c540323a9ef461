"""The pipeline layer, in the order the data flows: outpaint (the one entry: prepare -> sample) over canvas -> encode
-> plan (seeds) -> executors (passes, guidance, sampler, noise schedulers) -> composite; with the input check,
resume, memory tracing and shots. Built on the model layer only."""
