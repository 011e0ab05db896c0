"""Python threads that allocate: each builds and drops lists of strings; the
result does not depend on scheduling.
    python3 threads.py [THREADS] [N]"""
import sys
import threading


def main(threads, n):
    results = [0] * threads

    def work(t):
        acc = 0
        for r in range(n):
            chunk = [f"{t}-{r}-{i}" for i in range(500)]
            acc += sum(len(s) for s in chunk)
        results[t] = acc

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    print(f"threads={threads} total={sum(results)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8, int(sys.argv[2]) if len(sys.argv) > 2 else 40)
