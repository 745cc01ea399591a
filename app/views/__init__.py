"""One module per dashboard page, registered in app/streamlit_app.py's ``PAGES``."""
