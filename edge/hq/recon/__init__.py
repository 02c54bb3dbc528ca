"""Reconciliation at HQ (contract v1.1): the digests HQ sends each gateway of what it and its
ERP hold, the reports the gateways send back, and a simulated ERP and storefront that can
be told to plant each kind of mismatch."""
