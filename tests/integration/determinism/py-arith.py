print(sum(i * i for i in range(100000)), 2 ** 200, 7 / 3)
