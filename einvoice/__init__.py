"""Legal e-invoices (issue 11): Factur-X documents (CII XML, EN 16931 profile, in a PDF/A-3).

Pure: documents are built from data (`einvoice.document`), with no database, Temporal or network.
"""
