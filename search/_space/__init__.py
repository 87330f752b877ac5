"""What a study is: the feasible set of hierarchy lists (`feasible`), the cost limits that restrict it (`limits`) and
the settings fixed for the whole study (`settings`)."""
