#!/usr/bin/env bash
# LocalStack ready hook: create the bucket the examples write to.
# Idempotent, so restarting a persisted container does not fail.
set -euo pipefail

bucket=${TRIBUTARY_BUCKET:-tributary-lake}
if ! awslocal s3api head-bucket --bucket "$bucket" >/dev/null 2>&1; then
  awslocal s3 mb "s3://$bucket"
fi
echo "bucket s3://$bucket ready"
