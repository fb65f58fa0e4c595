"""Demo site: the File Uploads seed's three examples (avatar, gallery, documents) served by twistd.

Run from the repository root: ``python -m demo`` (migrates the SQLite database, then serves
http://127.0.0.1:8000/ with ``twistd -n uploads --settings demo.settings``).
"""
