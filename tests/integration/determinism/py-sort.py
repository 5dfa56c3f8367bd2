import random; r = random.Random(42); xs = [r.randint(0, 10**6) for _ in range(5000)]; print(sorted(xs)[:10], sorted(xs)[-3:])
