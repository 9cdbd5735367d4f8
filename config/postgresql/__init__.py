"""Django's PostgreSQL backend with the production pool's connection check (config/db_pool.py)."""
