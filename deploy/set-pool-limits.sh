#!/bin/sh
# Set the slot limit of each Dagster pool of the Earth memory in the instance's database.
#
# Dagster 1.13 keeps per-pool limits in the instance storage (not in dagster.yaml), so a deployment
# sets them once after the database exists, and again whenever they change. Runs with DAGSTER_HOME
# (and the DAGSTER_PG_* variables of dagster.yaml) of the deployment:
#
#   DAGSTER_POOL_LIMITS="raster=2 training=1 inference=1 reports=2" deploy/set-pool-limits.sh
#
# The pools are the ones the assets declare with `pool=`: raster, training, inference, reports.
set -eu
limits="${DAGSTER_POOL_LIMITS:-raster=2 training=1 inference=1 reports=2}"
for pair in $limits; do
  pool="${pair%%=*}"
  limit="${pair#*=}"
  case "$limit" in
    ''|*[!0-9]*)
      echo "DAGSTER_POOL_LIMITS: '$pair' is not POOL=N with N a whole number (e.g. raster=2)" >&2
      exit 2
      ;;
  esac
  dagster instance concurrency set "$pool" "$limit"
done
