print({str(i): i for i in range(20)}); print(set(["apple", "banana", "cherry", "date"]))
