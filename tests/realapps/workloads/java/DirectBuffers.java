import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

// A Java workload for the realapps suite: direct buffers, which the JVM
// takes from malloc one by one (Unsafe.allocateMemory), kept alive, and
// strings in a HashMap on the Java heap. Prints a checksum of N only.
//   java DirectBuffers N
public class DirectBuffers {
    public static void main(String[] args) {
        int n = Integer.parseInt(args[0]);
        long total = 0;
        List<ByteBuffer> keep = new ArrayList<>();
        Map<String, Integer> words = new HashMap<>();
        for (int i = 0; i < n; i++) {
            ByteBuffer b = ByteBuffer.allocateDirect(20000 + i % 64);
            b.put(0, (byte) (i % 127));
            total += b.get(0) + b.capacity();
            keep.add(b);
            words.merge("w" + (i % 100), 1, Integer::sum);
        }
        System.out.println("direct n=" + n + " total=" + total + " words=" + words.size());
    }
}
