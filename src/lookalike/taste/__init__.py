"""Learning from votes: tastes fitted to Dope-or-Nope verdicts, and simulated players to measure them."""
