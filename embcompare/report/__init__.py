"""The report: figures and one HTML page from the stages' result tables.

``sections.build_sections`` turns the tables (``ReportInputs``) into sections of figures and
tables; ``page.render_page`` writes the page; ``figures.png_bytes`` the images. Reading and
writing files is the job's part (jobs/report.py).
"""
from .page import Item, Section, render_page
from .sections import ReportInputs, build_sections

__all__ = ["Item", "ReportInputs", "Section", "build_sections", "render_page"]
