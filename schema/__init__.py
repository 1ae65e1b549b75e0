"""The CRM: tables, their GraphQL face, and their registration with the sync engine."""
