"""Alembic's environment for the HQ store.

The store runs the migrations itself when it opens (`edge.hq.database.migrate`), on a
connection it hands in here, inside the transaction that holds its migration lock: no
alembic.ini, and no engine of Alembic's own.
"""

from alembic import context

from edge.hq.tables import metadata

context.configure(connection=context.config.attributes["connection"], target_metadata=metadata)
with context.begin_transaction():
    context.run_migrations()
