"""What a study asks: study files parsed and validated (``studies``), the search space and how a trial
draws a configuration from it (``space``), the samplers and pruners a study may name (``choices``)."""
