"""The search's answer: the model of every list's true accuracy (`model`), the ranking and verdict read from a study
(`ranking`), and the small-sample statistics they use (`stats`)."""
