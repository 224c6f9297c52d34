package eventledger.bench;

import com.sun.tools.attach.VirtualMachine;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

/**
 * The local broker's request counts so far, one line of JSON: {"Produce": n, "Fetch": n, ...},
 * read from its {@code kafka.network:type=RequestMetrics,name=RequestsPerSec,request=*} meters
 * (their cumulative {@code Count}, summed over versions).
 *
 * <p>Argument: the broker JVM's pid. It attaches to that JVM through the Attach API and starts
 * its local management agent (same user only, no port opened, no broker flag needed), so the
 * broker pays for the counts only while they are read. Used by the bench's e2e phase, which
 * reads the counts before and after each setting.
 */
public final class BrokerRequests {
  private BrokerRequests() {}

  public static void main(String[] args) throws Exception {
    if (args.length != 1) {
      System.err.println("usage: BrokerRequests BROKER_PID");
      System.exit(2);
    }
    VirtualMachine vm = VirtualMachine.attach(args[0]);
    String address;
    try {
      address = vm.startLocalManagementAgent();
    } finally {
      vm.detach();
    }
    try (JMXConnector connector = JMXConnectorFactory.connect(new JMXServiceURL(address))) {
      MBeanServerConnection server = connector.getMBeanServerConnection();
      Set<ObjectName> names =
          server.queryNames(
              new ObjectName("kafka.network:type=RequestMetrics,name=RequestsPerSec,*"), null);
      Map<String, Long> counts = new TreeMap<>();
      for (ObjectName name : names) {
        String request = name.getKeyProperty("request");
        long count = ((Number) server.getAttribute(name, "Count")).longValue();
        counts.merge(request, count, Long::sum);
      }
      StringBuilder out = new StringBuilder("{");
      for (Map.Entry<String, Long> e : counts.entrySet()) {
        if (out.length() > 1) {
          out.append(", ");
        }
        out.append('"').append(e.getKey()).append("\": ").append(e.getValue());
      }
      System.out.println(out.append('}'));
    }
  }
}
