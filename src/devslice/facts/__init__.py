"""Facts read the world and never change it (after pyinfra's facts)."""
