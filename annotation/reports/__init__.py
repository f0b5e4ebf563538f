"""The files a study produces: its report page (``study_report``), its export files (``export_files``), the files
other annotation tools read (``ecosystem``) and the export job that zips them into an archive (``archive_job``).

A layer above the services: it reads through the selectors and stores through the services; nothing below imports it.
"""
