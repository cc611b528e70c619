"""Clients of the managed-Postgres providers' recovery APIs (Neon, Supabase, Railway,
Render), one small module each behind one contract (`contract.py`), on one HTTP client
that honours the providers' rate limits and retryable answers (`http.py`)."""
