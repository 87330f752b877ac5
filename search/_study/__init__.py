"""Running a study: create or load it and the one loop every trial goes through (`run`), one trial's life (`trial`),
and confirmation over further seeds (`confirm`)."""
