ps = [n for n in range(2, 5000) if all(n % d for d in range(2, int(n ** 0.5) + 1))]; print(len(ps), ps[-5:])
