"""The protoviz Streamlit dashboard (layout only; the work is done in :mod:`protoviz`)."""
