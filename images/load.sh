#!/bin/sh
# load.sh: the data-broker download step. Materialises every object under
# the store prefix into DATA_DIR; idempotent and safe to restart with partial
# data already there. Input: DATA_DIR and DATA_STORE_* (see `ferry load
# --help`); DATA_STORE_PROVIDER empty means pre-downloaded mode. Extra
# arguments are passed to `ferry load` (e.g. --delete). Progress and errors
# go to stdout; exit 0 on success, non-zero on failure (codes in README.md).
exec ferry load "$@" 2>&1
