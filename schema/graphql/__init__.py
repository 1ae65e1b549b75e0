"""fieldsync's GraphQL face: types, queries, mutations and the sync protocol adapters."""
