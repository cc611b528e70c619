"""HTTP stand-ins of the providers' recovery APIs (Neon, Supabase, Railway, Render),
built from their published contracts (tests/data/provider-apis), for tests and demos:
asynchronous operations that take a few polls, injectable faults, and restores that
create real databases on a test cluster."""
