-- Run once by the postgres image when its data volume is first initialised (as POSTGRES_USER, in
-- POSTGRES_DB = mlflow). MLflow and Optuna both keep an `alembic_version` table, so each gets its
-- own database on the same server.
CREATE DATABASE optuna;
