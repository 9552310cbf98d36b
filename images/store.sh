#!/bin/sh
# store.sh: the data-broker upload step. Uploads every file of DATA_DIR to
# the store prefix through ferry's staged upload journal; idempotent and safe
# to restart: a re-run skips what the store already holds, continues large
# files part by part, and after a success makes listing requests only.
# Input: DATA_DIR and DATA_STORE_* (see `ferry store --help`);
# DATA_STORE_PROVIDER empty means pre-downloaded mode (nothing to upload).
# Extra arguments are passed to `ferry store` (e.g. --delete). Progress and
# errors go to stdout; exit 0 on success, non-zero on failure (codes in
# README.md).
exec ferry store "$@" 2>&1
