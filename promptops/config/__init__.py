"""Configuration: the one settings model (`settings`), its reading from `PROMPTOPS_*` (`reader`), and the
people who may write (`users`)."""
