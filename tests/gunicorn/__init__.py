"""Django under real gunicorn (and uvicorn) processes: how many processes bind what, and what an upload call does."""
