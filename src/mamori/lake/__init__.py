"""The lake: every table as date-partitioned Parquet, queried through DuckDB views."""
