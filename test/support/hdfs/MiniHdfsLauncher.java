// A MiniDFSCluster (one NameNode, N DataNodes, WebHDFS on) for node-mgr's tests.
//
// Protocol with the parent (test/support/hdfs.ts), one JSON object per line:
//   stdout  {"event":"ready","webhdfsUrl":...,"namenode":{...},"dataNodes":[...]} once serving
//           {"event":"datanode-stopped","index":i} / {"event":"error","message":...} per command
//   stdin   "stop-datanode <i>"   stop DataNode i (indexes as in the ready line, never shifted)
//           EOF                   shut down and exit 0 (SIGTERM does the same)
// Everything Hadoop prints goes to stderr, so stdout carries only these lines.

import java.io.BufferedReader;
import java.io.File;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.List;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.hdfs.server.datanode.DataNode;
import sun.misc.Signal;

public final class MiniHdfsLauncher {
  private static final PrintStream OUT = System.out;
  private static volatile MiniDFSCluster cluster;
  private static final List<DataNode> dataNodes = new ArrayList<>();
  private static final boolean[] stopped = new boolean[64];

  public static void main(String[] args) throws Exception {
    // Hadoop and its loggers may write to System.out; keep stdout for the protocol.
    System.setOut(System.err);

    int numDataNodes = 1;
    File baseDir = null;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--data-nodes" -> numDataNodes = Integer.parseInt(args[++i]);
        case "--base-dir" -> baseDir = new File(args[++i]);
        default -> {
          System.err.println("usage: MiniHdfsLauncher [--data-nodes N] [--base-dir DIR]");
          System.exit(2);
        }
      }
    }
    if (numDataNodes < 1 || numDataNodes > stopped.length) {
      throw new IllegalArgumentException("--data-nodes must be 1.." + stopped.length);
    }
    if (baseDir == null) baseDir = Files.createTempDirectory("minidfs-").toFile();

    Configuration conf = new Configuration();
    conf.setBoolean("dfs.webhdfs.enabled", true);
    // Tests write as any user name (root by default); no permission checks, no superuser group.
    conf.setBoolean("dfs.permissions.enabled", false);
    // Everything on loopback: never bind a wildcard address on a shared machine.
    conf.set("dfs.namenode.rpc-bind-host", "127.0.0.1");
    conf.set("dfs.namenode.http-bind-host", "127.0.0.1");
    conf.set("dfs.datanode.hostname", "127.0.0.1");
    // A stopped DataNode is declared dead fast, so a test sees the failure it caused.
    conf.setInt("dfs.heartbeat.interval", 1);
    conf.setInt("dfs.namenode.heartbeat.recheck-interval", 2000);
    // The DataNode-side client of a WebHDFS upload must fail, not stall, when its pipeline breaks.
    conf.setInt("dfs.client.socket-timeout", 10_000);
    conf.setInt("ipc.client.connect.max.retries", 1);
    conf.setInt("ipc.client.connect.max.retries.on.timeouts", 1);
    // Closing a file waits for the DataNode's block report, polling from 400 ms by default:
    // every small write (a record line) would take half a second.
    conf.setInt("dfs.client.block.write.locateFollowingBlock.initial.delay.ms", 20);

    // Stop the cluster from an ordinary thread, before the JVM's shutdown phase: MiniDFSCluster
    // removes Hadoop's own shutdown hooks while stopping, which throws once the JVM is exiting.
    for (String name : new String[] {"TERM", "INT"}) {
      Signal.handle(new Signal(name), sig -> new Thread(MiniHdfsLauncher::stopAndExit, "minidfs-stop").start());
    }

    long t0 = System.nanoTime();
    cluster = new MiniDFSCluster.Builder(conf, baseDir)
        .numDataNodes(numDataNodes)
        .nameNodePort(0)
        .nameNodeHttpPort(0)
        .build();
    cluster.waitActive();
    dataNodes.addAll(cluster.getDataNodes());

    int nnHttpPort = cluster.getNameNode().getHttpAddress().getPort();
    int nnRpcPort = cluster.getNameNodePort();
    StringBuilder dns = new StringBuilder("[");
    for (int i = 0; i < dataNodes.size(); i++) {
      DataNode dn = dataNodes.get(i);
      if (i > 0) dns.append(',');
      dns.append("{\"index\":").append(i)
          .append(",\"httpPort\":").append(dn.getInfoPort())
          .append(",\"xferPort\":").append(dn.getXferPort())
          .append(",\"ipcPort\":").append(dn.getIpcPort()).append('}');
    }
    dns.append(']');
    emit("{\"event\":\"ready\""
        + ",\"webhdfsUrl\":\"http://127.0.0.1:" + nnHttpPort + "/webhdfs/v1\""
        + ",\"namenode\":{\"httpUrl\":\"http://127.0.0.1:" + nnHttpPort + "\""
        + ",\"rpcUrl\":\"hdfs://127.0.0.1:" + nnRpcPort + "\"}"
        + ",\"dataNodes\":" + dns
        + ",\"baseDir\":" + quote(baseDir.getAbsolutePath())
        + ",\"startMs\":" + (System.nanoTime() - t0) / 1_000_000 + "}");

    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    for (String line; (line = in.readLine()) != null; ) {
      String[] words = line.trim().split("\\s+");
      if (words.length == 2 && words[0].equals("stop-datanode")) {
        stopDataNode(words[1]);
      } else if (!line.isBlank()) {
        emit("{\"event\":\"error\",\"message\":" + quote("unknown command: " + line) + "}");
      }
    }
    // stdin closed: the parent is done with us (or gone).
    stopAndExit();
  }

  private static void stopDataNode(String arg) {
    int i;
    try {
      i = Integer.parseInt(arg);
    } catch (NumberFormatException e) {
      emit("{\"event\":\"error\",\"message\":" + quote("not a DataNode index: " + arg) + "}");
      return;
    }
    if (i < 0 || i >= dataNodes.size() || stopped[i]) {
      emit("{\"event\":\"error\",\"message\":" + quote("no running DataNode " + i) + "}");
      return;
    }
    // By transfer address, not by position: MiniDFSCluster shifts positions after a stop.
    String xferAddr = dataNodes.get(i).getDatanodeId().getXferAddr();
    synchronized (MiniHdfsLauncher.class) {
      if (cluster == null) return; // shutting down
      cluster.stopDataNode(xferAddr);
      stopped[i] = true;
    }
    emit("{\"event\":\"datanode-stopped\",\"index\":" + i + "}");
  }

  private static void stopAndExit() {
    int status = 0;
    synchronized (MiniHdfsLauncher.class) {
      if (cluster != null) {
        try {
          cluster.shutdown(true);
        } catch (Throwable t) {
          System.err.println("MiniDFSCluster shutdown failed: " + t);
          status = 1;
        }
        cluster = null;
      }
    }
    System.exit(status);
  }

  private static void emit(String json) {
    synchronized (OUT) {
      OUT.println(json);
      OUT.flush();
    }
  }

  private static String quote(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\r' -> b.append("\\r");
        case '\t' -> b.append("\\t");
        default -> {
          if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
          else b.append(c);
        }
      }
    }
    return b.append('"').toString();
  }
}
