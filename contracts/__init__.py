"""Contracts shared by workflows, activities and callers: the pydantic models that cross
Temporal's boundary and the search attributes. Imports nothing of ours but `billing`."""
