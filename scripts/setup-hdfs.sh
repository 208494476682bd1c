#!/usr/bin/env bash
# Prepares the MiniDFSCluster launcher that tests start through test/support/hdfs.ts. Idempotent:
# returns at once when .cache/hdfs matches the pom, the launcher source and the JDK.
#
#   1. Maven resolves org.apache.hadoop:hadoop-client-minicluster (pom in test/support/hdfs) into
#      ~/.m2 and writes the classpath; nothing is built by Maven.
#   2. The two jars holding the WebHDFS resources are unpacked into directories: the NameNode's
#      Jersey scans its resource packages by inflating every entry of the jars that hold them
#      (measured on 2 cores: 9.5-11.4 s to ready from jars, 4.9-6.6 s unpacked).
#   3. javac compiles MiniHdfsLauncher.java; .cache/hdfs/launch.json tells hdfs.ts how to run it.
#
# JDK: 17 (Debian's default; what Hadoop 3.5 is built and tested on). Override with
# NODE_MGR_HDFS_JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64 (also works, with JDK warnings).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
src=$root/test/support/hdfs
out=$root/.cache/hdfs

java_home=${NODE_MGR_HDFS_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}
if [[ -z ${NODE_MGR_HDFS_JAVA_HOME:-} && ! -x $java_home/bin/javac ]] && command -v javac >/dev/null; then
  java_home=$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")") # the default JDK
fi
if [[ ! -x $java_home/bin/javac ]]; then
  echo "setup-hdfs: no JDK at $java_home (set NODE_MGR_HDFS_JAVA_HOME, or apt-get install default-jdk-headless)" >&2
  exit 1
fi
command -v mvn >/dev/null || { echo "setup-hdfs: mvn not found (apt-get install maven)" >&2; exit 1; }

mkdir -p "$root/.cache"
# Test files may start HDFS concurrently: one setup at a time.
exec 9>"$root/.cache/hdfs.lock"
flock 9

stamp=$( { cat "$src/pom.xml" "$src/MiniHdfsLauncher.java" "$root/scripts/setup-hdfs.sh"; "$java_home/bin/java" -version 2>&1; } | sha256sum | cut -c1-64)
if [[ -f $out/stamp && $(cat "$out/stamp") == "$stamp" && -f $out/launch.json ]]; then
  missing=0
  while IFS= read -r entry; do [[ -e $entry ]] || missing=1; done < "$out/classpath.txt"
  ((missing)) || exit 0
fi

echo "setup-hdfs: resolving hadoop-client-minicluster with Maven (JDK: $java_home)" >&2
t0=$(date +%s)
rm -rf "$out.tmp"
mkdir -p "$out.tmp/classes" "$out.tmp/unpacked"
if ! mvn_out=$(JAVA_HOME=$java_home mvn -B -q -f "$src/pom.xml" dependency:build-classpath \
  -Dmdep.outputFile="$out.tmp/maven-classpath.txt" 2>&1); then
  echo "$mvn_out" >&2
  echo "setup-hdfs: Maven could not resolve hadoop-client-minicluster" >&2
  exit 1
fi

: >"$out.tmp/classpath.txt"
echo "$out/classes" >>"$out.tmp/classpath.txt"
IFS=: read -r -a jars <"$out.tmp/maven-classpath.txt" || true # no trailing newline
for jar in "${jars[@]}"; do
  case $(basename "$jar") in
    hadoop-client-minicluster-*.jar | hadoop-client-api-*.jar)
      name=$(basename "$jar" .jar)
      mkdir -p "$out.tmp/unpacked/$name"
      (cd "$out.tmp/unpacked/$name" && "$java_home/bin/jar" xf "$jar")
      echo "$out/unpacked/$name" >>"$out.tmp/classpath.txt"
      ;;
    *) echo "$jar" >>"$out.tmp/classpath.txt" ;;
  esac
done

# Quiet unless it fails: javac always warns that sun.misc.Signal (the launcher's SIGTERM
# handler) is internal API.
if ! javac_out=$("$java_home/bin/javac" -d "$out.tmp/classes" -cp "$(cat "$out.tmp/maven-classpath.txt")" \
  "$src/MiniHdfsLauncher.java" 2>&1); then
  echo "$javac_out" >&2
  echo "setup-hdfs: javac failed" >&2
  exit 1
fi

# launch.json: what hdfs.ts spawns. C1 only (TieredStopAtLevel=1): a test cluster lives for
# seconds to minutes; it starts in 3.5-4.4 s instead of 4.9-6.6 s and still moves ~250 MB/s.
node -e '
  const [java, cpFile, outFile] = process.argv.slice(1);
  const fs = require("node:fs");
  const classpath = fs.readFileSync(cpFile, "utf8").split("\n").filter(Boolean);
  fs.writeFileSync(outFile, JSON.stringify({
    java,
    jvmArgs: ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx1g", "-Djava.net.preferIPv4Stack=true"],
    classpath,
    mainClass: "MiniHdfsLauncher",
  }, null, 2) + "\n");
' "$java_home/bin/java" "$out.tmp/classpath.txt" "$out.tmp/launch.json"
echo "$stamp" >"$out.tmp/stamp"

rm -rf "$out"
mv "$out.tmp" "$out"
echo "setup-hdfs: ready in $(($(date +%s) - t0)) s (.cache/hdfs)" >&2
