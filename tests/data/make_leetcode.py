"""Writes tests/data/leetcode/{train,test}.jsonl: hand-written LeetCode problems in newfacade/LeetCodeDataset's schema.

Every problem below (statement, starter code, reference solution, test inputs) is written by hand; the expected
outputs are what the reference solution returns on those inputs (as LeetCodeDataset's own outputs come from its
reference solutions). `input_output` and `test` hold the same cases. Run from the repository root:
`.venv/bin/python tests/data/make_leetcode.py` (deterministic: the same bytes every time).
"""
import json, random
from pathlib import Path

# the import header LeetCodeDataset's `prompt` column carries (its solutions assume it)
DATASET_PROMPT = '''import random
import functools
import collections
import string
import math
import datetime

from typing import *
from functools import *
from collections import *
from itertools import *
from heapq import *
from bisect import *
from string import *
from operator import *
from math import *

inf = float('inf')

class ListNode:
    def __init__(self, val=0, next=None):
        self.val = val
        self.next = next

def list_node(values: list):
    if not values:
        return None
    head = ListNode(values[0])
    p = head
    for val in values[1:]:
        node = ListNode(val)
        p.next = node
        p = node
    return head

def is_same_list(p1, p2):
    if p1 is None and p2 is None:
        return True
    if not p1 or not p2:
        return False
    return p1.val == p2.val and is_same_list(p1.next, p2.next)

class TreeNode:
    def __init__(self, val=0, left=None, right=None):
        self.val = val
        self.left = left
        self.right = right

def tree_node(values: list):
    if not values:
        return None
    root = TreeNode(values[0])
    i = 1
    queue = deque()
    queue.append(root)
    while queue:
        node = queue.popleft()
        if i < len(values) and values[i] is not None:
            node.left = TreeNode(values[i])
            queue.append(node.left)
        i += 1
        if i < len(values) and values[i] is not None:
            node.right = TreeNode(values[i])
            queue.append(node.right)
        i += 1
    return root

def is_same_tree(p, q):
    if not p and not q:
        return True
    elif not p or not q:
        return False
    elif p.val != q.val:
        return False
    else:
        return is_same_tree(p.left, q.left) and is_same_tree(p.right, q.right)
'''

QUERY = ("You are an expert Python programmer. You will be given a question (problem specification) and will generate a "
         "correct Python program that matches the specification and passes all tests.\n\n### Question:\n{desc}\n\n"
         "### Format: You will use the following starter code to write the solution to the problem and enclose your "
         "code within delimiters.\n```python\n{starter}\n```\n\n### Answer: (use the provided format with backticks)\n\n")

R = random.Random(12)
def ints(lo, hi, n): return [R.randint(lo, hi) for _ in range(n)]
def word(alpha="abc", lo=1, hi=8): return "".join(R.choice(alpha) for _ in range(R.randint(lo, hi)))

LONG = ("\n\nNote: this statement is deliberately long. " + " ".join(
    f"Remark {k}: the judge compares your return value with the expected one exactly, element by element, so the order "
    f"and the type of every element matter, and the input is never modified by the judge before your call." for k in range(1, 13)))

# (task_id, question_id, difficulty, tags, date, description, method signature, body, kind, inputs)
# kind: "value" (compare with ==), "list" (ListNode result), "tree" (TreeNode result)
P = []
def add(task_id, qid, diff, tags, date, desc, sig, body, inputs, kind="value", split="train"):
    P.append(dict(task_id=task_id, qid=qid, diff=diff, tags=tags, date=date, desc=desc, sig=sig, body=body,
                  inputs=inputs, kind=kind, split=split))

def sorted_sum_cases(n):
    out = []
    for _ in range(n):
        nums = ints(-30, 30, R.randint(2, 9)); i, j = R.sample(range(len(nums)), 2)
        t = nums[i] + nums[j]
        # keep only inputs with exactly one answer
        pairs = [(a, b) for a in range(len(nums)) for b in range(a + 1, len(nums)) if nums[a] + nums[b] == t]
        if len(pairs) == 1: out.append(f"nums = {nums}, target = {t}")
    return out

add("two-sum", 1, "Easy", ["Array", "Hash Table"], "2015-08-07T00:00:00",
    "Given an array of integers nums and an integer target, return indices of the two numbers such that they add up to target.\n"
    "You may assume that each input would have exactly one solution, and you may not use the same element twice.\n"
    "Return the answer with the smaller index first.\n\nExample 1:\n\nInput: nums = [2,7,11,15], target = 9\nOutput: [0,1]\n\n"
    "Constraints:\n\n2 <= nums.length <= 10^4\n-10^9 <= nums[i] <= 10^9",
    "def twoSum(self, nums: List[int], target: int) -> List[int]:",
    "d = {}\nfor i, x in enumerate(nums):\n    if target - x in d:\n        return [d[target - x], i]\n    d[x] = i",
    sorted_sum_cases(60)[:24])
add("palindrome-number", 9, "Easy", ["Math"], "2015-08-07T00:00:00",
    "Given an integer x, return true if x is a palindrome, and false otherwise.\n\nExample 1:\n\nInput: x = 121\nOutput: true\n\n"
    "Example 2:\n\nInput: x = -121\nOutput: false\nExplanation: From left to right, it reads -121. From right to left, it becomes 121-.\n\n"
    "Constraints:\n\n-2^31 <= x <= 2^31 - 1",
    "def isPalindrome(self, x: int) -> bool:",
    "if x < 0:\n    return False\ns = str(x)\nreturn s == s[::-1]",
    [f"x = {v}" for v in [121, -121, 10, 0, 1, 11, 12321, 123, 1001, 1000021, 7, 22, 2147447412, 100, -1, 989, 45654, 4554, 4556, 1234321, 12344321, 9999, 10, 88]][:24])
add("roman-to-integer", 13, "Easy", ["Hash Table", "Math", "String"], "2015-08-07T00:00:00",
    "Roman numerals are represented by seven symbols: I (1), V (5), X (10), L (50), C (100), D (500) and M (1000). "
    "A smaller symbol before a larger one is subtracted (IV = 4, IX = 9, XL = 40, XC = 90, CD = 400, CM = 900). "
    "Given a roman numeral, convert it to an integer.\n\nExample 1:\n\nInput: s = \"LVIII\"\nOutput: 58\n\n"
    "Constraints:\n\n1 <= s.length <= 15\nIt is guaranteed that s is a valid roman numeral in the range [1, 3999].",
    "def romanToInt(self, s: str) -> int:",
    "v = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}\ntotal = 0\nfor i, c in enumerate(s):\n"
    "    if i + 1 < len(s) and v[c] < v[s[i + 1]]:\n        total -= v[c]\n    else:\n        total += v[c]\nreturn total",
    [f"s = {s!r}".replace("'", '"') for s in ["III", "LVIII", "MCMXCIV", "IV", "IX", "XL", "XC", "CD", "CM", "MMMCMXCIX",
                                             "XLII", "DCCC", "CDXLIV", "MMXXV", "LXXXVIII", "CXLIX", "I", "MMM", "XIX", "DCXXI", "CCCLXV"]])
add("longest-common-prefix", 14, "Easy", ["Trie", "String"], "2015-08-07T00:00:00",
    "Write a function to find the longest common prefix string amongst an array of strings.\n"
    "If there is no common prefix, return an empty string \"\".\n\nExample 1:\n\nInput: strs = [\"flower\",\"flow\",\"flight\"]\nOutput: \"fl\"\n\n"
    "Constraints:\n\n1 <= strs.length <= 200\n0 <= strs[i].length <= 200",
    "def longestCommonPrefix(self, strs: List[str]) -> str:",
    "for i in range(len(strs[0])):\n    for s in strs[1:]:\n        if len(s) <= i or s[i] != strs[0][i]:\n            return s[:i] if len(s) <= i else strs[0][:i]\nreturn strs[0]",
    [("strs = " + json.dumps([p + word("xyz", 0, 3) for _ in range(R.randint(1, 4))])) for p in
     [word("ab", 0, 4) for _ in range(22)]])
add("valid-parentheses", 20, "Easy", ["Stack", "String"], "2015-08-07T00:00:00",
    "Given a string s containing just the characters '(', ')', '{', '}', '[' and ']', determine if the input string is valid: "
    "open brackets must be closed by the same type of brackets and in the correct order.\n\nExample 1:\n\nInput: s = \"()[]{}\"\nOutput: true\n\n"
    "Constraints:\n\n1 <= s.length <= 10^4",
    "def isValid(self, s: str) -> bool:",
    "pairs = {')': '(', ']': '[', '}': '{'}\nstack = []\nfor c in s:\n    if c in pairs:\n        if not stack or stack.pop() != pairs[c]:\n"
    "            return False\n    else:\n        stack.append(c)\nreturn not stack",
    [f's = "{s}"' for s in ["()", "()[]{}", "(]", "([])", "([)]", "{[]}", "(", ")", "((()))", "({[]})", "(((", "())", "[{()}]{}",
                            "]", "{{}}[]", "{[}]", "()()()", "(()[]{})", "([]{)}", "{}{}{}{}", "[[[]]]", "(()"]])
add("merge-two-sorted-lists", 21, "Easy", ["Recursion", "Linked List"], "2015-08-07T00:00:00",
    "You are given the heads of two sorted linked lists list1 and list2. Merge the two lists into one sorted list, "
    "made by splicing together the nodes of the first two lists, and return its head.\n\nExample 1:\n\n"
    "Input: list1 = [1,2,4], list2 = [1,3,4]\nOutput: [1,1,2,3,4,4]\n\nConstraints:\n\nThe number of nodes in both lists is in the range [0, 50].",
    "def mergeTwoLists(self, list1: Optional[ListNode], list2: Optional[ListNode]) -> Optional[ListNode]:",
    "dummy = tail = ListNode()\nwhile list1 and list2:\n    if list1.val <= list2.val:\n        tail.next, list1 = list1, list1.next\n"
    "    else:\n        tail.next, list2 = list2, list2.next\n    tail = tail.next\ntail.next = list1 or list2\nreturn dummy.next",
    [f"list1 = list_node({sorted(ints(-9, 9, R.randint(0, 5)))}), list2 = list_node({sorted(ints(-9, 9, R.randint(0, 5)))})" for _ in range(22)],
    kind="list")
add("search-insert-position", 35, "Easy", ["Array", "Binary Search"], "2015-08-07T00:00:00",
    "Given a sorted array of distinct integers and a target value, return the index if the target is found. If not, return the index "
    "where it would be if it were inserted in order. You must write an algorithm with O(log n) runtime complexity.\n\n"
    "Example 1:\n\nInput: nums = [1,3,5,6], target = 5\nOutput: 2\n\nConstraints:\n\n1 <= nums.length <= 10^4",
    "def searchInsert(self, nums: List[int], target: int) -> int:",
    "return bisect.bisect_left(nums, target)",
    [f"nums = {sorted(set(ints(-20, 20, R.randint(1, 8))))}, target = {R.randint(-22, 22)}" for _ in range(23)])
add("length-of-last-word", 58, "Easy", ["String"], "2015-08-07T00:00:00",
    "Given a string s consisting of words and spaces, return the length of the last word in the string. "
    "A word is a maximal substring consisting of non-space characters only.\n\nExample 1:\n\nInput: s = \"Hello World\"\nOutput: 5\n\n"
    "Constraints:\n\n1 <= s.length <= 10^4\nThere will be at least one word in s.",
    "def lengthOfLastWord(self, s: str) -> int:",
    "return len(s.split()[-1])",
    [f's = "{" " * R.randint(0, 2) + " ".join(word("abcdefgh", 1, 7) for _ in range(R.randint(1, 4))) + " " * R.randint(0, 3)}"' for _ in range(21)])
add("plus-one", 66, "Easy", ["Array", "Math"], "2015-08-07T00:00:00",
    "You are given a large integer represented as an integer array digits, where each digits[i] is the ith digit of the integer, "
    "ordered from most significant to least significant, without leading zeros. Increment the integer by one and return the resulting array of digits.\n\n"
    "Example 1:\n\nInput: digits = [1,2,3]\nOutput: [1,2,4]\n\nConstraints:\n\n1 <= digits.length <= 100",
    "def plusOne(self, digits: List[int]) -> List[int]:",
    "n = int(''.join(map(str, digits))) + 1\nreturn [int(c) for c in str(n)]",
    [f"digits = {[R.randint(1, 9)] + ints(0, 9, R.randint(0, 5)) if k % 5 else [9] * (1 + k // 5)}" for k in range(22)])
add("climbing-stairs", 70, "Easy", ["Memoization", "Math", "Dynamic Programming"], "2015-08-07T00:00:00",
    "You are climbing a staircase. It takes n steps to reach the top. Each time you can either climb 1 or 2 steps. "
    "In how many distinct ways can you climb to the top?\n\nExample 1:\n\nInput: n = 3\nOutput: 3\n\nConstraints:\n\n1 <= n <= 45",
    "def climbStairs(self, n: int) -> int:",
    "a, b = 1, 1\nfor _ in range(n):\n    a, b = b, a + b\nreturn a",
    [f"n = {v}" for v in range(1, 46, 2)])
add("maximum-depth-of-binary-tree", 104, "Easy", ["Tree", "Depth-First Search", "Binary Tree"], "2015-08-07T00:00:00",
    "Given the root of a binary tree, return its maximum depth: the number of nodes along the longest path from the root "
    "node down to the farthest leaf node.\n\nExample 1:\n\nInput: root = [3,9,20,null,null,15,7]\nOutput: 3\n\n"
    "Constraints:\n\nThe number of nodes in the tree is in the range [0, 10^4].",
    "def maxDepth(self, root: Optional[TreeNode]) -> int:",
    "if root is None:\n    return 0\nreturn 1 + max(self.maxDepth(root.left), self.maxDepth(root.right))",
    None, kind="value")
add("invert-binary-tree", 226, "Easy", ["Tree", "Depth-First Search", "Binary Tree"], "2015-08-07T00:00:00",
    "Given the root of a binary tree, invert the tree, and return its root.\n\nExample 1:\n\nInput: root = [4,2,7,1,3,6,9]\n"
    "Output: [4,7,2,9,6,3,1]\n\nConstraints:\n\nThe number of nodes in the tree is in the range [0, 100].",
    "def invertTree(self, root: Optional[TreeNode]) -> Optional[TreeNode]:",
    "if root is None:\n    return None\nroot.left, root.right = self.invertTree(root.right), self.invertTree(root.left)\nreturn root",
    None, kind="tree")
add("best-time-to-buy-and-sell-stock", 121, "Easy", ["Array", "Dynamic Programming"], "2015-08-07T00:00:00",
    "You are given an array prices where prices[i] is the price of a given stock on the ith day. You want to maximize your profit "
    "by choosing a single day to buy one stock and choosing a different day in the future to sell that stock. Return the maximum "
    "profit you can achieve from this transaction. If you cannot achieve any profit, return 0.\n\nExample 1:\n\n"
    "Input: prices = [7,1,5,3,6,4]\nOutput: 5\n\nConstraints:\n\n1 <= prices.length <= 10^5",
    "def maxProfit(self, prices: List[int]) -> int:",
    "best, low = 0, prices[0]\nfor p in prices:\n    low = min(low, p)\n    best = max(best, p - low)\nreturn best",
    [f"prices = {ints(0, 20, R.randint(1, 9))}" for _ in range(25)])
add("single-number", 136, "Easy", ["Bit Manipulation", "Array"], "2015-08-07T00:00:00",
    "Given a non-empty array of integers nums, every element appears twice except for one. Find that single one.\n\n"
    "Example 1:\n\nInput: nums = [4,1,2,1,2]\nOutput: 4\n\nConstraints:\n\n1 <= nums.length <= 3 * 10^4",
    "def singleNumber(self, nums: List[int]) -> int:",
    "return functools.reduce(operator.xor, nums)",
    [(lambda ps, s: f"nums = {R.sample(ps + ps + [s], 2 * len(ps) + 1)}")(R.sample(range(-9, 10), R.randint(0, 4)), 10 + k) for k in range(12)],
    split="train")  # only 12 tests: min_tests (20) drops it
add("majority-element", 169, "Easy", ["Array", "Hash Table", "Counting"], "2015-08-07T00:00:00",
    "Given an array nums of size n, return the majority element: the element that appears more than n / 2 times. "
    "You may assume that the majority element always exists in the array.\n\nExample 1:\n\nInput: nums = [2,2,1,1,1,2,2]\nOutput: 2\n\n"
    "Constraints:\n\n1 <= n <= 5 * 10^4",
    "def majorityElement(self, nums: List[int]) -> int:",
    "return Counter(nums).most_common(1)[0][0]",
    [(lambda m, rest: f"nums = {R.sample([m] * (len(rest) + 1) + rest, 2 * len(rest) + 1)}")(R.randint(-5, 5), ints(6, 9, R.randint(0, 4))) for _ in range(22)])
add("reverse-linked-list", 206, "Easy", ["Recursion", "Linked List"], "2015-05-04T00:00:00",
    "Given the head of a singly linked list, reverse the list, and return the reversed list.\n\nExample 1:\n\n"
    "Input: head = [1,2,3,4,5]\nOutput: [5,4,3,2,1]\n\nConstraints:\n\nThe number of nodes in the list is the range [0, 5000].",
    "def reverseList(self, head: Optional[ListNode]) -> Optional[ListNode]:",
    "prev = None\nwhile head:\n    head.next, prev, head = prev, head, head.next\nreturn prev",
    [f"head = list_node({ints(-9, 9, R.randint(0, 7))})" for _ in range(22)], kind="list")
add("contains-duplicate", 217, "Easy", ["Array", "Hash Table", "Sorting"], "2015-05-25T00:00:00",
    "Given an integer array nums, return true if any value appears at least twice in the array, and return false if every element is distinct.\n\n"
    "Example 1:\n\nInput: nums = [1,2,3,1]\nOutput: true\n\nConstraints:\n\n1 <= nums.length <= 10^5",
    "def containsDuplicate(self, nums: List[int]) -> bool:",
    "return len(set(nums)) < len(nums)",
    [f"nums = {ints(0, 12, R.randint(1, 6))}" for _ in range(24)])
add("missing-number", 268, "Easy", ["Bit Manipulation", "Array", "Math"], "2015-08-24T00:00:00",
    "Given an array nums containing n distinct numbers in the range [0, n], return the only number in the range that is missing from the array.\n\n"
    "Example 1:\n\nInput: nums = [3,0,1]\nOutput: 2\n\nConstraints:\n\n1 <= n <= 10^4",
    "def missingNumber(self, nums: List[int]) -> int:",
    "n = len(nums)\nreturn n * (n + 1) // 2 - sum(nums)",
    [(lambda n, gone: f"nums = {R.sample([v for v in range(n + 1) if v != gone], n)}")(n, R.randint(0, n)) for n in ints(1, 9, 24)])
add("longest-substring-without-repeating-characters", 3, "Medium", ["Hash Table", "String", "Sliding Window"], "2015-08-07T00:00:00",
    "Given a string s, find the length of the longest substring without repeating characters.\n\nExample 1:\n\n"
    "Input: s = \"abcabcbb\"\nOutput: 3\nExplanation: The answer is \"abc\", with the length of 3.\n\n"
    "Constraints:\n\n0 <= s.length <= 5 * 10^4",
    "def lengthOfLongestSubstring(self, s: str) -> int:",
    "seen, start, best = {}, 0, 0\nfor i, c in enumerate(s):\n    if seen.get(c, -1) >= start:\n        start = seen[c] + 1\n"
    "    seen[c] = i\n    best = max(best, i - start + 1)\nreturn best",
    [f's = "{word("abcde", 0, 12)}"' for _ in range(26)])
add("container-with-most-water", 11, "Medium", ["Greedy", "Array", "Two Pointers"], "2015-08-07T00:00:00",
    "You are given an integer array height of length n. Find two lines that together with the x-axis form a container, "
    "such that the container contains the most water. Return the maximum amount of water a container can store.\n\n"
    "Example 1:\n\nInput: height = [1,8,6,2,5,4,8,3,7]\nOutput: 49\n\nConstraints:\n\n2 <= n <= 10^5",
    "def maxArea(self, height: List[int]) -> int:",
    "i, j, best = 0, len(height) - 1, 0\nwhile i < j:\n    best = max(best, (j - i) * min(height[i], height[j]))\n"
    "    if height[i] < height[j]:\n        i += 1\n    else:\n        j -= 1\nreturn best",
    [f"height = {ints(0, 15, R.randint(2, 10))}" for _ in range(22)])
add("jump-game", 55, "Medium", ["Greedy", "Array", "Dynamic Programming"], "2015-08-07T00:00:00",
    "You are given an integer array nums. You are initially positioned at the array's first index, and each element in the "
    "array represents your maximum jump length at that position. Return true if you can reach the last index, or false otherwise.\n\n"
    "Example 1:\n\nInput: nums = [2,3,1,1,4]\nOutput: true\n\nConstraints:\n\n1 <= nums.length <= 10^4",
    "def canJump(self, nums: List[int]) -> bool:",
    "reach = 0\nfor i, x in enumerate(nums):\n    if i > reach:\n        return False\n    reach = max(reach, i + x)\nreturn True",
    [f"nums = {ints(0, 3, R.randint(1, 9))}" for _ in range(24)])
add("maximum-subarray", 53, "Medium", ["Array", "Divide and Conquer", "Dynamic Programming"], "2015-08-07T00:00:00",
    "Given an integer array nums, find the subarray with the largest sum, and return its sum.\n\nExample 1:\n\n"
    "Input: nums = [-2,1,-3,4,-1,2,1,-5,4]\nOutput: 6\n\nConstraints:\n\n1 <= nums.length <= 10^5" + LONG,
    "def maxSubArray(self, nums: List[int]) -> int:",
    "best = cur = nums[0]\nfor x in nums[1:]:\n    cur = max(x, cur + x)\n    best = max(best, cur)\nreturn best",
    [f"nums = {ints(-10, 10, R.randint(1, 10))}" for _ in range(24)])
add("unique-paths", 62, "Medium", ["Math", "Dynamic Programming", "Combinatorics"], "2015-08-07T00:00:00",
    "There is a robot on an m x n grid. The robot is initially located at the top-left corner and tries to move to the "
    "bottom-right corner. The robot can only move either down or right at any point in time. Given the two integers m and n, "
    "return the number of possible unique paths that the robot can take to reach the bottom-right corner.\n\nExample 1:\n\n"
    "Input: m = 3, n = 7\nOutput: 28\n\nConstraints:\n\n1 <= m, n <= 100",
    "def uniquePaths(self, m: int, n: int) -> int:",
    "return math.comb(m + n - 2, m - 1)",
    [f"m = {R.randint(1, 12)}, n = {R.randint(1, 12)}" for _ in range(22)])
add("coin-change", 322, "Medium", ["Breadth-First Search", "Array", "Dynamic Programming"], "2015-12-27T00:00:00",
    "You are given an integer array coins representing coins of different denominations and an integer amount representing a "
    "total amount of money. Return the fewest number of coins that you need to make up that amount. If that amount of money "
    "cannot be made up by any combination of the coins, return -1. You may assume that you have an infinite number of each kind of coin.\n\n"
    "Example 1:\n\nInput: coins = [1,2,5], amount = 11\nOutput: 3\n\nConstraints:\n\n1 <= coins.length <= 12\n0 <= amount <= 10^4",
    "def coinChange(self, coins: List[int], amount: int) -> int:",
    "dp = [0] + [inf] * amount\nfor a in range(1, amount + 1):\n    for c in coins:\n        if c <= a and dp[a - c] + 1 < dp[a]:\n"
    "            dp[a] = dp[a - c] + 1\nreturn -1 if dp[amount] == inf else dp[amount]",
    [f"coins = {sorted(set(ints(2, 12, R.randint(1, 3))))}, amount = {R.randint(0, 40)}" for _ in range(24)])
add("house-robber", 198, "Medium", ["Array", "Dynamic Programming"], "2015-03-31T00:00:00",
    "You are a professional robber planning to rob houses along a street. Each house has a certain amount of money stashed; "
    "adjacent houses have security systems connected, so you cannot rob two adjacent houses. Given an integer array nums "
    "representing the amount of money of each house, return the maximum amount of money you can rob tonight.\n\n"
    "Example 1:\n\nInput: nums = [2,7,9,3,1]\nOutput: 12\n\nConstraints:\n\n1 <= nums.length <= 100",
    "def rob(self, nums: List[int]) -> int:",
    "a = b = 0\nfor x in nums:\n    a, b = b, max(b, a + x)\nreturn b",
    [f"nums = {ints(0, 20, R.randint(1, 9))}" for _ in range(9)])  # only 9 tests: dropped by min_tests
add("product-of-array-except-self", 238, "Medium", ["Array", "Prefix Sum"], "2015-07-15T00:00:00",
    "Given an integer array nums, return an array answer such that answer[i] is equal to the product of all the elements of "
    "nums except nums[i]. You must write an algorithm that runs in O(n) time and without using the division operation.\n\n"
    "Example 1:\n\nInput: nums = [1,2,3,4]\nOutput: [24,12,8,6]\n\nConstraints:\n\n2 <= nums.length <= 10^5",
    "def productExceptSelf(self, nums: List[int]) -> List[int]:",
    "n = len(nums)\nans = [1] * n\nleft = 1\nfor i in range(n):\n    ans[i] = left\n    left *= nums[i]\nright = 1\n"
    "for i in range(n - 1, -1, -1):\n    ans[i] *= right\n    right *= nums[i]\nreturn ans",
    [f"nums = {ints(-4, 5, R.randint(2, 6))}" for _ in range(22)])
add("longest-increasing-subsequence", 300, "Medium", ["Array", "Binary Search", "Dynamic Programming"], "2015-11-03T00:00:00",
    "Given an integer array nums, return the length of the longest strictly increasing subsequence.\n\nExample 1:\n\n"
    "Input: nums = [10,9,2,5,3,7,101,18]\nOutput: 4\n\nConstraints:\n\n1 <= nums.length <= 2500",
    "def lengthOfLIS(self, nums: List[int]) -> int:",
    "tails = []\nfor x in nums:\n    i = bisect.bisect_left(tails, x)\n    if i == len(tails):\n        tails.append(x)\n    else:\n        tails[i] = x\nreturn len(tails)",
    [f"nums = {ints(0, 20, R.randint(1, 11))}" for _ in range(24)])
add("binary-tree-level-order-traversal", 102, "Medium", ["Tree", "Breadth-First Search", "Binary Tree"], "2015-08-07T00:00:00",
    "Given the root of a binary tree, return the level order traversal of its nodes' values (i.e., from left to right, level by level).\n\n"
    "Example 1:\n\nInput: root = [3,9,20,null,null,15,7]\nOutput: [[3],[9,20],[15,7]]\n\nConstraints:\n\nThe number of nodes in the tree is in the range [0, 2000].",
    "def levelOrder(self, root: Optional[TreeNode]) -> List[List[int]]:",
    "ans, level = [], [root] if root else []\nwhile level:\n    ans.append([n.val for n in level])\n"
    "    level = [c for n in level for c in (n.left, n.right) if c]\nreturn ans",
    None)
add("trapping-rain-water", 42, "Hard", ["Stack", "Array", "Two Pointers", "Dynamic Programming"], "2015-08-07T00:00:00",
    "Given n non-negative integers representing an elevation map where the width of each bar is 1, compute how much water it can trap after raining.\n\n"
    "Example 1:\n\nInput: height = [0,1,0,2,1,0,1,3,2,1,2,1]\nOutput: 6\n\nConstraints:\n\n1 <= n <= 2 * 10^4" + LONG,
    "def trap(self, height: List[int]) -> int:",
    "n = len(height)\nleft, right = [0] * n, [0] * n\nfor i in range(n):\n    left[i] = max(height[i], left[i - 1] if i else 0)\n"
    "for i in range(n - 1, -1, -1):\n    right[i] = max(height[i], right[i + 1] if i < n - 1 else 0)\n"
    "return sum(min(l, r) - h for l, r, h in zip(left, right, height))",
    [f"height = {ints(0, 6, R.randint(1, 12))}" for _ in range(26)])
add("median-of-two-sorted-arrays", 4, "Hard", ["Array", "Binary Search", "Divide and Conquer"], "2015-08-07T00:00:00",
    "Given two sorted arrays nums1 and nums2 of size m and n respectively, return the median of the two sorted arrays.\n\n"
    "Example 1:\n\nInput: nums1 = [1,3], nums2 = [2]\nOutput: 2.0\n\nConstraints:\n\n0 <= m, n <= 1000\n1 <= m + n <= 2000",
    "def findMedianSortedArrays(self, nums1: List[int], nums2: List[int]) -> float:",
    "a = sorted(nums1 + nums2)\nn = len(a)\nreturn float(a[n // 2]) if n % 2 else (a[n // 2 - 1] + a[n // 2]) / 2",
    [f"nums1 = {sorted(ints(-9, 9, R.randint(0, 4)))}, nums2 = {sorted(ints(-9, 9, R.randint(1, 4)))}" for _ in range(22)])
add("longest-valid-parentheses", 32, "Hard", ["Stack", "String", "Dynamic Programming"], "2015-08-07T00:00:00",
    "Given a string containing just the characters '(' and ')', return the length of the longest valid (well-formed) parentheses substring.\n\n"
    "Example 1:\n\nInput: s = \")()())\"\nOutput: 4\n\nConstraints:\n\n0 <= s.length <= 3 * 10^4",
    "def longestValidParentheses(self, s: str) -> int:",
    "stack, best = [-1], 0\nfor i, c in enumerate(s):\n    if c == '(':\n        stack.append(i)\n    else:\n        stack.pop()\n"
    "        if not stack:\n            stack.append(i)\n        else:\n            best = max(best, i - stack[-1])\nreturn best",
    [f's = "{word("()", 0, 12)}"' for _ in range(24)])

# ---- test split ----
add("fizz-buzz", 412, "Easy", ["Math", "String", "Simulation"], "2016-10-11T00:00:00",
    "Given an integer n, return a string array answer (1-indexed) where answer[i] == \"FizzBuzz\" if i is divisible by 3 and 5, "
    "\"Fizz\" if i is divisible by 3, \"Buzz\" if i is divisible by 5, and i (as a string) otherwise.\n\nExample 1:\n\n"
    "Input: n = 3\nOutput: [\"1\",\"2\",\"Fizz\"]\n\nConstraints:\n\n1 <= n <= 10^4",
    "def fizzBuzz(self, n: int) -> List[str]:",
    "return ['FizzBuzz' if i % 15 == 0 else 'Fizz' if i % 3 == 0 else 'Buzz' if i % 5 == 0 else str(i) for i in range(1, n + 1)]",
    [f"n = {v}" for v in range(1, 23)], split="test")
add("add-digits", 258, "Easy", ["Math", "Number Theory", "Simulation"], "2015-08-16T00:00:00",
    "Given an integer num, repeatedly add all its digits until the result has only one digit, and return it.\n\n"
    "Example 1:\n\nInput: num = 38\nOutput: 2\n\nConstraints:\n\n0 <= num <= 2^31 - 1",
    "def addDigits(self, num: int) -> int:",
    "while num >= 10:\n    num = sum(int(c) for c in str(num))\nreturn num",
    [f"num = {R.randint(0, 10 ** R.randint(1, 9))}" for _ in range(24)], split="test")
add("power-of-two", 231, "Easy", ["Bit Manipulation", "Recursion", "Math"], "2015-07-06T00:00:00",
    "Given an integer n, return true if it is a power of two. Otherwise, return false.\n\nExample 1:\n\nInput: n = 16\nOutput: true\n\n"
    "Constraints:\n\n-2^31 <= n <= 2^31 - 1",
    "def isPowerOfTwo(self, n: int) -> bool:",
    "return n > 0 and n & (n - 1) == 0",
    [f"n = {v}" for v in [1, 16, 3, 0, -16, 1024, 1023, 2, 6, 64, 96, 2 ** 30, 2 ** 30 + 1, -1, 8, 12, 256, 255, 4096, 5, 7, 32]], split="test")
add("sqrtx", 69, "Easy", ["Math", "Binary Search"], "2015-08-07T00:00:00",
    "Given a non-negative integer x, return the square root of x rounded down to the nearest integer. The returned integer "
    "should be non-negative as well. You must not use any built-in exponent function or operator.\n\nExample 1:\n\n"
    "Input: x = 8\nOutput: 2\n\nConstraints:\n\n0 <= x <= 2^31 - 1",
    "def mySqrt(self, x: int) -> int:",
    "lo, hi = 0, x\nwhile lo < hi:\n    mid = (lo + hi + 1) // 2\n    if mid * mid <= x:\n        lo = mid\n    else:\n        hi = mid - 1\nreturn lo",
    [f"x = {v}" for v in [0, 1, 4, 8, 15, 16, 17, 99, 100, 2147395599, 2147483647, 3, 24, 25, 26, 48, 49, 50, 1000, 99999]], split="test")
add("remove-nth-node-from-end-of-list", 19, "Medium", ["Linked List", "Two Pointers"], "2015-08-07T00:00:00",
    "Given the head of a linked list, remove the nth node from the end of the list and return its head.\n\nExample 1:\n\n"
    "Input: head = [1,2,3,4,5], n = 2\nOutput: [1,2,3,5]\n\nConstraints:\n\nThe number of nodes in the list is sz, 1 <= sz <= 30, 1 <= n <= sz",
    "def removeNthFromEnd(self, head: Optional[ListNode], n: int) -> Optional[ListNode]:",
    "dummy = fast = slow = ListNode(0, head)\nfor _ in range(n):\n    fast = fast.next\nwhile fast.next:\n    fast, slow = fast.next, slow.next\n"
    "slow.next = slow.next.next\nreturn dummy.next",
    [(lambda v: f"head = list_node({v}), n = {R.randint(1, len(v))}")(ints(0, 9, R.randint(1, 7))) for _ in range(22)], kind="list", split="test")
add("decode-ways", 91, "Medium", ["String", "Dynamic Programming"], "2015-08-07T00:00:00",
    "A message of letters A-Z is encoded to digits with 'A' -> \"1\", 'B' -> \"2\", ..., 'Z' -> \"26\". Given a string s containing only "
    "digits, return the number of ways to decode it.\n\nExample 1:\n\nInput: s = \"226\"\nOutput: 3\n\n"
    "Constraints:\n\n1 <= s.length <= 100\ns contains only digits and may contain leading zero(s)." + LONG,
    "def numDecodings(self, s: str) -> int:",
    "a, b = 0, 1\nfor i, c in enumerate(s):\n    cur = b if c != '0' else 0\n    if i and s[i - 1] != '0' and int(s[i - 1:i + 1]) <= 26:\n"
    "        cur += a\n    a, b = b, cur\nreturn b",
    [f's = "{word("0123456", 1, 8)}"' for _ in range(22)], split="test")
add("word-break", 139, "Medium", ["Trie", "Hash Table", "String", "Dynamic Programming"], "2015-08-07T00:00:00",
    "Given a string s and a dictionary of strings wordDict, return true if s can be segmented into a space-separated sequence "
    "of one or more dictionary words. The same word may be reused multiple times.\n\nExample 1:\n\n"
    "Input: s = \"leetcode\", wordDict = [\"leet\",\"code\"]\nOutput: true\n\nConstraints:\n\n1 <= s.length <= 300",
    "def wordBreak(self, s: str, wordDict: List[str]) -> bool:",
    "words = set(wordDict)\nok = [True] + [False] * len(s)\nfor i in range(1, len(s) + 1):\n"
    "    ok[i] = any(ok[j] and s[j:i] in words for j in range(i))\nreturn ok[len(s)]",
    [f"s = \"{word('ab', 1, 9)}\", wordDict = {json.dumps(sorted(set(word('ab', 1, 3) for _ in range(R.randint(1, 3)))))}" for _ in range(24)], split="test")
add("minimum-path-sum", 64, "Medium", ["Array", "Dynamic Programming", "Matrix"], "2015-08-07T00:00:00",
    "Given a m x n grid filled with non-negative numbers, find a path from top left to bottom right, which minimizes the sum "
    "of all numbers along its path. You can only move either down or right at any point in time.\n\nExample 1:\n\n"
    "Input: grid = [[1,3,1],[1,5,1],[4,2,1]]\nOutput: 7\n\nConstraints:\n\n1 <= m, n <= 200",
    "def minPathSum(self, grid: List[List[int]]) -> int:",
    "m, n = len(grid), len(grid[0])\ndp = [[0] * n for _ in range(m)]\nfor i in range(m):\n    for j in range(n):\n"
    "        best = 0\n"
    "        if i and j:\n            best = min(dp[i - 1][j], dp[i][j - 1])\n        elif i:\n            best = dp[i - 1][j]\n"
    "        elif j:\n            best = dp[i][j - 1]\n        dp[i][j] = best + grid[i][j]\nreturn dp[-1][-1]",
    [(lambda m, n: f"grid = {[ints(0, 9, n) for _ in range(m)]}")(R.randint(1, 4), R.randint(1, 4)) for _ in range(15)], split="test")  # 15: dropped
add("same-tree", 100, "Easy", ["Tree", "Depth-First Search", "Binary Tree"], "2015-08-07T00:00:00",
    "Given the roots of two binary trees p and q, write a function to check if they are the same or not. Two binary trees "
    "are considered the same if they are structurally identical, and the nodes have the same value.\n\nExample 1:\n\n"
    "Input: p = [1,2,3], q = [1,2,3]\nOutput: true\n\nConstraints:\n\nThe number of nodes in both trees is in the range [0, 100].",
    "def isSameTree(self, p: Optional[TreeNode], q: Optional[TreeNode]) -> bool:",
    "if p is None or q is None:\n    return p is q\nreturn p.val == q.val and self.isSameTree(p.left, q.left) and self.isSameTree(p.right, q.right)",
    None, split="test")
add("kth-largest-element-in-an-array", 215, "Medium", ["Array", "Divide and Conquer", "Sorting", "Heap (Priority Queue)"], "2015-05-22T00:00:00",
    "Given an integer array nums and an integer k, return the kth largest element in the array. Note that it is the kth "
    "largest element in the sorted order, not the kth distinct element.\n\nExample 1:\n\nInput: nums = [3,2,1,5,6,4], k = 2\nOutput: 5\n\n"
    "Constraints:\n\n1 <= k <= nums.length <= 10^5",
    "def findKthLargest(self, nums: List[int], k: int) -> int:",
    "return heapq.nlargest(k, nums)[-1]",
    [(lambda v: f"nums = {v}, k = {R.randint(1, len(v))}")(ints(-9, 9, R.randint(1, 8))) for _ in range(23)], split="test")
add("largest-rectangle-in-histogram", 84, "Hard", ["Stack", "Array", "Monotonic Stack"], "2015-08-07T00:00:00",
    "Given an array of integers heights representing the histogram's bar height where the width of each bar is 1, "
    "return the area of the largest rectangle in the histogram.\n\nExample 1:\n\nInput: heights = [2,1,5,6,2,3]\nOutput: 10\n\n"
    "Constraints:\n\n1 <= heights.length <= 10^5",
    "def largestRectangleArea(self, heights: List[int]) -> int:",
    "stack, best = [], 0\nfor i, h in enumerate(heights + [0]):\n    start = i\n    while stack and stack[-1][1] >= h:\n"
    "        j, hh = stack.pop()\n        best = max(best, hh * (i - j))\n        start = j\n    stack.append((start, h))\nreturn best",
    [f"heights = {ints(0, 8, R.randint(1, 10))}" for _ in range(24)], split="test")
add("first-missing-positive", 41, "Hard", ["Array", "Hash Table"], "2015-08-07T00:00:00",
    "Given an unsorted integer array nums, return the smallest positive integer that is not present in nums. You must "
    "implement an algorithm that runs in O(n) time and uses O(1) auxiliary space.\n\nExample 1:\n\nInput: nums = [3,4,-1,1]\nOutput: 2\n\n"
    "Constraints:\n\n1 <= nums.length <= 10^5",
    "def firstMissingPositive(self, nums: List[int]) -> int:",
    "s = set(nums)\ni = 1\nwhile i in s:\n    i += 1\nreturn i",
    [f"nums = {ints(-3, 8, R.randint(1, 8))}" for _ in range(21)], split="test")
add("count-primes", 204, "Medium", ["Array", "Math", "Enumeration", "Number Theory"], "2015-04-27T00:00:00",
    "Given an integer n, return the number of prime numbers that are strictly less than n.\n\nExample 1:\n\nInput: n = 10\nOutput: 4\n\n"
    "Constraints:\n\n0 <= n <= 5 * 10^6",
    "def countPrimes(self, n: int) -> int:",
    "if n < 3:\n    return 0\nsieve = [True] * n\nsieve[0] = sieve[1] = False\nfor i in range(2, int(n ** 0.5) + 1):\n"
    "    if sieve[i]:\n        sieve[i * i::i] = [False] * len(range(i * i, n, i))\nreturn sum(sieve)",
    [f"n = {v}" for v in [0, 1, 2, 3, 10, 11, 12, 100, 499, 500, 1000, 5000, 30, 31, 97, 98, 13, 20, 50, 7919, 10000, 2]], split="test")
add("sort-colors-count", 75, "Medium", ["Array", "Two Pointers", "Sorting"], "2015-08-07T00:00:00",
    "Given an array nums with n objects colored red, white, or blue (the integers 0, 1 and 2), return them sorted so that objects of "
    "the same color are adjacent, in the order red, white and blue.\n\nExample 1:\n\nInput: nums = [2,0,2,1,1,0]\nOutput: [0,0,1,1,2,2]\n\n"
    "Constraints:\n\n1 <= n <= 300",
    "def sortColors(self, nums: List[int]) -> List[int]:",
    "c = Counter(nums)\nreturn [0] * c[0] + [1] * c[1] + [2] * c[2]",
    [f"nums = {ints(0, 2, R.randint(1, 9))}" for _ in range(10)], split="test")  # 10: dropped

# tree inputs, shared by the tree problems
def rand_tree(n):
    vals = ints(-9, 9, n)
    out = []
    for v in vals: out.append(None if (out and R.random() < 0.2) else v)
    while out and out[-1] is None: out.pop()
    return out
TREES = [rand_tree(R.randint(0, 9)) for _ in range(40)]
for p in P:
    if p["inputs"] is None:
        if p["task_id"] == "same-tree":
            p["inputs"] = [f"p = tree_node({t}), q = tree_node({t if k % 2 else rand_tree(len(t))})" for k, t in enumerate(TREES[:22])]
        else:
            p["inputs"] = [f"root = tree_node({t})" for t in TREES[:22 + len(p["task_id"]) % 3]]

def tree_values(root):
    out, level = [], [root]
    while any(level):
        nxt = []
        for n in level:
            out.append(n.val if n else None)
            if n: nxt += [n.left, n.right]
        level = nxt
    while out and out[-1] is None: out.pop()
    return out

def build(p):
    starter = f"class Solution:\n    {p['sig']}\n        "
    body = "\n".join("        " + l for l in p["body"].split("\n"))
    completion = f"class Solution:\n    {p['sig']}\n{body}\n"
    ns = {}
    # the dataset's header, then the modules the paper's unified prefix imports (`from bisect import *` shadows `bisect`)
    exec(DATASET_PROMPT + "\nimport bisect, heapq, math, functools, operator\n", ns); exec(completion, ns)
    fn = p["sig"].split("(")[0].removeprefix("def ")
    io, asserts = [], []
    for inp in p["inputs"]:
        got = eval(f"Solution().{fn}({inp})", ns)
        # a linked-list / tree result is written as its value list, an empty one as None (what the solution returns)
        if p["kind"] == "list":
            vals = []
            while got: vals.append(got.val); got = got.next
            out = repr(vals) if vals else "None"
            asserts.append(f"    assert is_same_list(candidate({inp}), list_node({vals!r}))")
        elif p["kind"] == "tree":
            vals = tree_values(got)
            out = repr(vals) if vals else "None"
            asserts.append(f"    assert is_same_tree(candidate({inp}), tree_node({vals!r}))")
        else:
            out = repr(got)
            asserts.append(f"    assert candidate({inp}) == {out}")
        io.append({"input": inp, "output": out})
    test = "def check(candidate):\n" + "\n".join(asserts) + "\n"
    response = f"```python\n{completion.rstrip()}\n```"
    return dict(task_id=p["task_id"], question_id=p["qid"], difficulty=p["diff"], tags=p["tags"],
                problem_description=p["desc"], starter_code=starter, estimated_date=p["date"], prompt=DATASET_PROMPT,
                completion=completion, entry_point=f"Solution().{fn}", test=test, input_output=io,
                query=QUERY.format(desc=p["desc"], starter=starter.rstrip()), response=response)

if __name__ == "__main__":
    out = Path(__file__).parent / "leetcode"; out.mkdir(exist_ok=True)
    for split in ("train", "test"):
        rows = [build(p) for p in P if p["split"] == split]
        with open(out / f"{split}.jsonl", "w") as f:
            for r in rows: f.write(json.dumps(r) + "\n")
        print(split, len(rows), "problems;", sum(len(r["input_output"]) >= 20 for r in rows), "with >= 20 tests")
