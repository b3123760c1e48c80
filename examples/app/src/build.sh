#!/bin/sh
# build.sh VERSION OUT: "compile" the app into OUT.
set -eu
version=$1 out=$2
mkdir -p "$out"
echo "$version" > "$out/VERSION"
cat > "$out/hello" <<SCRIPT
#!/bin/sh
echo "hello from \$(hostname), version $version"
SCRIPT
cat > "$out/serve" <<'SCRIPT'
#!/bin/sh
# serve PORT: the app's web server (busybox httpd) in the foreground.
echo "serving /www on :${1:-8080}"
exec httpd -f -p "${1:-8080}" -h /www
SCRIPT
chmod 755 "$out/hello" "$out/serve"
