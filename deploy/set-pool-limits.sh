#!/bin/sh
# Set the slot limit of each Dagster pool of the Earth memory in the instance's database.
#
# Dagster 1.13 keeps per-pool limits in the instance storage (not in dagster.yaml), so a deployment
# sets them once after the database exists, and again whenever they change. The sizes have one
# home, dagster_project.instance (sized from the container's cores, each overridable by
# MEMORIES_POOL_RASTER, MEMORIES_POOL_TRAINING, MEMORIES_POOL_INFERENCE, MEMORIES_POOL_REPORTS);
# this script only runs it against the deployment's own dagster.yaml (DAGSTER_HOME), unchanged:
#
#   MEMORIES_POOL_RASTER=2 deploy/set-pool-limits.sh
set -eu
exec python -m dagster_project.instance --pools-only
