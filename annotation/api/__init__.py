"""The researcher's REST API (django-ninja): token authentication, studies, answers, labels and outputs.

A Django app of its own (label ``studio_api``) so that its one table, the API tokens, has its own migrations.
Schema and browsable docs at ``/api/docs``; see :mod:`annotation.api.endpoints`.
"""
