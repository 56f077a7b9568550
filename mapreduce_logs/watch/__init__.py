"""watch DIR: the long-lived loop that keeps the outputs current as files arrive or grow."""
